import sys

from mutants.harness import main

sys.exit(main())
