"""`python -m vocab FILE...`: validate JSON-LD documents and print the result in plain words."""

from vocab.validate import main

raise SystemExit(main())
