"""`python -m kms_aks_tools.guard PREVIEW.json ...`: the same as `kms-aks guard`."""

import sys

from kms_aks_tools.commands.guard import main

sys.exit(main())
