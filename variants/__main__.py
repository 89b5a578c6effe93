from croupier.variants.cli import main

main()
