"""`python -m fmnist_tui` runs the CLI (also what torchrun and the tests launch)."""

from fmnist_tui.cli import main

if __name__ == "__main__":
    main()
