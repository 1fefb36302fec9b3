"""The bottom layer, used by all and importing nothing above it: errors, models, the settings
schema and its layers, the values commands take (`choices`), and small utilities (atomic
writes, redaction of secrets, sizes people read, running beside a thread)."""
