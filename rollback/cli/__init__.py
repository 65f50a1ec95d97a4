"""The click front end: parsing, the factory, rendering and the one error handler."""
