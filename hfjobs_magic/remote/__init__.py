"""Everything that talks to the outside: the one `HfApi` we hold (hub), S3/GCS/bucket push targets
seen from the kernel (storage), and the hardware table with prices (hardware).

Imports only the top-level leaves (`errors`, `mask`); never `cell`, `checks`, `jobs` or `views`.
"""
