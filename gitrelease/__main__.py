"""`python -m gitrelease` is the `gitrelease` command."""

import sys

from gitrelease.cli import main

sys.exit(main())
