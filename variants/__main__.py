from variants.cli import main

main()
