from protgan.cli import main

main()
