from rollback.cli.main import main

main()
