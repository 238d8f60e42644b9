import sys

from lanthorn.cli import main

sys.exit(main())
