"""``praxisnetz demo``: the eight model municipalities and the hub as a local federation.

Every node is a real ``praxisnetz serve`` process on its own 127.0.0.1 port with its own
SQLite database under the demo folder. The story goes through the public interfaces
only — the authoring API and signed ActivityPub between the servers — so what the demo
shows is what a municipality would see:

1. create the nodes (``praxisnetz init``) unless the demo folder already holds them,
2. start them,
3. the hub follows every municipality, and every municipality follows the others,
4. each municipality publishes its example content (practices and materials first,
   then the experiences, stances and comments that refer to them),
5. wait until every delivery has arrived, and check what arrived where.

``--check`` runs the same story and exits 0 only if every check passed.
"""

from node.demo.main import add_arguments, main

__all__ = ["add_arguments", "main"]
