"""Great Expectations suites kept as code (one module per dataset) and the publishing gate."""
