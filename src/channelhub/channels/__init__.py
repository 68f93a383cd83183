"""Channel adapters: each speaks one wire format and hands the kernel canonical requests."""
