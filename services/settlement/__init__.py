"""The settlement service (一站式结算): the one-window calculation on stored data, and clearing."""
