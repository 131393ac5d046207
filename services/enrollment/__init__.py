"""The enrollment service (参保登记): insured persons and their enrolment, year by year."""
