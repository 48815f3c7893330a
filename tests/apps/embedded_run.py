"""A program embedding hasten: ``python embedded_run.py [object|string]``."""

import sys

import cli_target

import hasten

if __name__ == "__main__":
    target = cli_target.app if sys.argv[1] == "object" else "cli_target:app"
    hasten.run(target, port=0, lifespan="off", headers=["x-embedded: yes"])
