from services.assistance.server import main

main()
