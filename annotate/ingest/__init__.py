"""Import: a file's bytes in, canonical trajectories in the database out, along one pipeline.

    format modules (annotate.formats)  ->  reader.py  ->  writer.py
    (one record -> one trajectory)         (bytes -> batches)   (batches -> rows, one transaction)

- ``reader``: checks the whole file, then converts its records a batch at a time; every
  problem names the file, the line and the field (pure; no Django).
- ``rows``: a canonical trajectory as the columns of its rows (pure).
- ``writer``: the one entry point of the upload page, the API and ``manage.py
  import_trajectories`` (:func:`annotate.ingest.writer.import_file`); writes each batch as it is
  read, all-or-nothing, then records the ImportBatch.
- ``sqlite``: the writer's fast path on the embedded SQLite (multi-row INSERTs; a big file read
  by forked processes while this one writes).
- ``preview``: what an import would write, and the upload kept until it is confirmed.
- ``jsontext``: JSON text of stored values, fast (pure).

This package's ``__init__`` imports nothing, so the pure modules stay pure.
"""
