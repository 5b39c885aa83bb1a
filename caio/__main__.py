from caio.cli import main

main()
