import sys

from correlax.cli.main import main

sys.exit(main())
