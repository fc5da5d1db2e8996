"""Where the TLC's files are published: the TLC's own site, and the zoomcamp's csv.gz mirror."""

TLC_PARQUET_URL = "https://d37ci6vzurychx.cloudfront.net/trip-data"
#: The DataTalksClub zoomcamp's csv.gz mirror: one GitHub release per service.
ZOOMCAMP_CSV_URL = "https://github.com/DataTalksClub/nyc-tlc-data/releases/download/{service}"
TLC_ZONES_URL = "https://d37ci6vzurychx.cloudfront.net/misc/taxi_zone_lookup.csv"
#: Where GitHub sends a release download: the zoomcamp mirror's files are served from there.
ZOOMCAMP_REDIRECT_HOSTS = ("objects.githubusercontent.com", "release-assets.githubusercontent.com")
