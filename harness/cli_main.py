"""`python -m harness.cli_main`: the CLI without the console-script wrapper (for tests and debugging)."""

from harness.cli import main

if __name__ == "__main__":
    main()
