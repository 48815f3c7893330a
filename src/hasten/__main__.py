"""``python -m hasten APP``."""

from hasten.cli import main

if __name__ == "__main__":
    main()
