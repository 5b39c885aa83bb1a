from tuf_repo.cli import main

main()
