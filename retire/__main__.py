from retire.cli import main

main()
