"""python -m devtools.generator: write months to a folder (see --help)."""

from devtools.generator.files import main

raise SystemExit(main())
