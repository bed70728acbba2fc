import sys

from cosmolet.cli import main

sys.exit(main())
