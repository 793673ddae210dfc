"""The hub role: aggregation index, SPARQL, search, handbook structure, editions.

The modules come in three layers; each imports only from its own layer and the ones
above it (``tests/test_hub_layers.py`` holds the library layer to that, also at run time).

Library, with no web or database dependencies (the tests run them without a server):

- ``contribution``: a typed, read-only view of a member contribution document
- ``index``: the RDF index (one named graph per member) in an embedded Oxigraph store
  (``claims_record``: the files beside it that keep its record of statements about
  other nodes, and the marker of a write under way)
- ``jsonld_quads``: member documents → RDF quads, offline (``known_context``: the
  known-context fast path, documents → N-Quads text without a JSON-LD processor)
- ``query_runner``: running a read-only SPARQL query under a time and a row limit
- ``query_cache``: answers kept until the index's next write; ``warm_answers`` makes
  the example queries' answers ready once the index is quiet
- ``maintained_answers``: the example queries' answers kept up to date at every write
  (sorted rows in memory; a write re-evaluates only the partitions it reaches)
- ``sparql``: the read-only SPARQL endpoint function and the example queries
- ``search``: German full-text search over contributions, in memory
- ``compounds``: German compounds split into the words of a curated lexicon of
  E-Government parts ("Personalakte" → "personal", "akte"), for the search
- ``structure``: chapters and sections of the handbook
- ``editions``: freezing, hashing, signing and verifying edition manifests
- ``changelog``: what changed between two editions
- ``render``: HTML renderings of an edition (and ``pdf``, the PDF one)
- ``dump``: RDF dumps of an edition from which every proof verifies offline
- ``settings``: the hub's own settings file (``DATA_DIR/hub.toml``)

Storage, on SQL through SQLAlchemy sessions passed in; they handle no requests (some
load aiohttp only through the node's shared modules, such as ``node.appkeys``):

- ``tables``: the hub's tables (members, sections, decisions, placements, editions, …)
- ``membership``: applying, approving, refusing and leaving
- ``editorial``: structure, placements and feedback counts in SQL
- ``triage``: the contributions waiting for a decision, a page at a time, with counts
- ``feedback``: the stances about a contribution or section with their reasons, newest
  first, a page at a time (for ``/api/hub/feedback`` and ``praxisnetz hub feedback``)
- ``public_feedback``: the stance counts and reasons of the public handbook, draft and
  edition pages and the section JSON-LD, without loading every stance document
- ``edition_store``: freezing, storing and publishing editions; their RDF dumps
- ``groups``: the topic ``Group`` actors and their followers
- ``key_rotation``: after ``keys rotate``, an actor Update for every topic group with followers
- ``search_backends``: search chosen by the database (in memory, or PostgreSQL's
  ``german`` configuration)
- ``search_snapshot``: the in-memory search written at a clean stop, read back at the
  next start
- ``aggregation``: keeps the RDF index and search current with SQL

Web and command line, which wire the layers above into the node:

- ``wiring``: ``add_hub`` for ``create_app`` (resources, inbox hook, routes)
- ``runtime``: the hub's resources of one process (``HUB`` on the app)
- ``routes``: public pages and endpoints (editions, draft, SPARQL, search, topics)
- ``api``: the editorial JSON API under ``/api/hub/``, and ``openapi`` describing it
- ``cli``: ``praxisnetz hub …``
"""
