"""The pages people use, one module each, with their forms, tables and URLs. Views are
thin: they check permissions, call queries and services, and render."""
