import sys

from wimfs.cli import main

sys.exit(main())
