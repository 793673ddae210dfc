"""The hub role: aggregation index, SPARQL, search, handbook structure, editions.

The modules here are library code with no web or database dependencies, so the
web layer and the CLI wire them up and the tests run without a server:

- ``contribution``: a typed, read-only view of a member contribution document
- ``index``: the RDF index (one named graph per member) in an embedded Oxigraph store
- ``query_runner``: running a read-only SPARQL query under a time and a row limit
- ``sparql``: the read-only SPARQL endpoint function and the example queries
- ``search``: German full-text search over contributions
- ``structure``: chapters and sections of the handbook
- ``editions``: freezing, hashing, signing and verifying edition manifests
- ``changelog``: what changed between two editions
- ``render``: HTML renderings of an edition (and ``pdf``, the PDF one)
- ``dump``: RDF dumps of an edition from which every proof verifies offline
"""
