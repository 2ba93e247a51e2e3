from informer_codec.cli import main

main()
