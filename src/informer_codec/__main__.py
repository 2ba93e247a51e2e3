from informer_codec.cli import main

if __name__ == "__main__":  # not when a spawned worker re-imports it
    main()
