import sys

from gate.integrations.cli.main import main

sys.exit(main())
