"""Tools for developers, never shipped (the wheel and the image leave this app out): the
demo (`seed_demo` and its traffic task), bulk data for benchmarks (`seed_bulk`), the
benchmarks (`bench`) and the helpers that start real worker processes for them."""
