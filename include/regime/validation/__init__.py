"""Great Expectations suites kept as code (one module per dataset) and the publishing gate."""

import logging

# Great Expectations logs a line at INFO for each documented API it defines while it is imported: 200+ lines in a
# task's log before anything is validated. Its suites import it through this package, so quieten that logger here.
logging.getLogger("great_expectations._docs_decorators").setLevel(logging.WARNING)
