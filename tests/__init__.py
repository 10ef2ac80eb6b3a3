"""The test suite, a package so that its support code is imported by its full name (``tests.support``)."""
