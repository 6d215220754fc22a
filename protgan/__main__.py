from protgan.cli import main

if __name__ == "__main__":  # spawn-started workers re-import this module; only a real run starts the CLI
    main()
