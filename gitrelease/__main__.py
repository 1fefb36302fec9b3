"""`python -m gitrelease` is the `gitrelease` command."""

import sys

from gitrelease.cli.main import main

sys.exit(main())
