from services.datashare.server import main

main()
