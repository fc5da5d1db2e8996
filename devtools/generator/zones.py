"""The 265 taxi zones (ids, boroughs, names) and how often each service picks each."""

from __future__ import annotations

import functools
import hashlib
from pathlib import Path

from devtools.generator.common import GeneratedFile, _atomic_write_bytes

# -------------------------------------------------------------------------------------------- zones

_MANHATTAN_YELLOW = (
    "Alphabet City", "Battery Park", "Battery Park City", "Bloomingdale", "Central Park", "Chinatown",
    "Clinton East", "Clinton West", "East Chelsea", "East Village", "Financial District North",
    "Financial District South", "Flatiron", "Garment District", "Governor's Island", "Gramercy",
    "Greenwich Village North", "Greenwich Village South", "Hudson Sq", "Kips Bay", "Lenox Hill East",
    "Lenox Hill West", "Lincoln Square East", "Lincoln Square West", "Little Italy/NoLiTa",
    "Lower East Side", "Manhattan Valley", "Meatpacking/West Village West", "Midtown Center",
    "Midtown East", "Midtown North", "Midtown South", "Murray Hill", "NoMad",
    "Penn Station/Madison Sq West", "Seaport", "SoHo", "Stuy Town/Peter Cooper Village",
    "Sutton Place/Turtle Bay North", "Times Sq/Theatre District", "TriBeCa/Civic Center",
    "Two Bridges/Seward Park", "UN/Turtle Bay South", "Union Sq", "Upper East Side North",
    "Upper East Side South", "Upper West Side North", "Upper West Side South",
    "West Chelsea/Hudson Yards", "West Village", "World Trade Center", "Yorkville East",
    "Yorkville West", "Ellis Island", "Liberty Island",
)
_MANHATTAN_BORO = (
    "Central Harlem", "Central Harlem North", "East Harlem North", "East Harlem South", "Hamilton Heights",
    "Highbridge Park", "Inwood", "Inwood Hill Park", "Manhattanville", "Marble Hill", "Morningside Heights",
    "Randalls Island", "Roosevelt Island", "Washington Heights North",
)
_BRONX = (
    "Allerton/Pelham Gardens", "Bedford Park", "Belmont", "Bronx Park", "Bronxdale", "City Island",
    "Claremont/Bathgate", "Co-Op City", "Country Club", "Crotona Park", "Crotona Park East",
    "East Concourse/Concourse Village", "East Tremont", "Eastchester", "Fordham South", "Highbridge",
    "Hunts Point", "Kingsbridge Heights", "Longwood", "Melrose South", "Morrisania/Melrose",
    "Mott Haven/Port Morris", "Mount Hope", "Norwood", "Parkchester", "Pelham Bay", "Pelham Bay Park",
    "Pelham Parkway", "Rikers Island", "Riverdale/North Riverdale/Fieldston",
    "Schuylerville/Edgewater Park", "Soundview/Bruckner", "Soundview/Castle Hill",
    "Spuyten Duyvil/Kingsbridge", "University Heights/Morris Heights", "Van Cortlandt Park",
    "Van Cortlandt Village", "Van Nest/Morris Park", "West Concourse", "West Farms/Bronx River",
    "Westchester Village/Unionport", "Williamsbridge/Olinville", "Woodlawn/Wakefield",
)
_BROOKLYN = (
    "Bath Beach", "Bay Ridge", "Bedford", "Bensonhurst East", "Bensonhurst West", "Boerum Hill",
    "Borough Park", "Brighton Beach", "Brooklyn Heights", "Brooklyn Navy Yard", "Brownsville",
    "Bushwick North", "Bushwick South", "Canarsie", "Carroll Gardens", "Clinton Hill", "Cobble Hill",
    "Columbia Street", "Coney Island", "Crown Heights North", "Crown Heights South", "Cypress Hills",
    "DUMBO/Vinegar Hill", "Downtown Brooklyn/MetroTech", "Dyker Heights", "East Flatbush/Farragut",
    "East Flatbush/Remsen Village", "East New York", "East New York/Pennsylvania Avenue",
    "East Williamsburg", "Erasmus", "Flatbush/Ditmas Park", "Flatlands", "Fort Greene", "Gowanus",
    "Gravesend", "Green-Wood Cemetery", "Greenpoint", "Homecrest", "Kensington", "Manhattan Beach",
    "Marine Park/Floyd Bennett Field", "Marine Park/Mill Basin", "Midwood", "Ocean Hill",
    "Ocean Parkway South", "Park Slope", "Prospect Heights", "Prospect Park", "Prospect-Lefferts Gardens",
    "Red Hook", "Sea Gate", "Sheepshead Bay", "Starrett City", "Stuyvesant Heights", "Sunset Park East",
    "Sunset Park West", "Williamsburg (North Side)", "Williamsburg (South Side)", "Windsor Terrace",
    "Brooklyn Bridge Park",
)
_QUEENS = (
    "Astoria", "Astoria Park", "Auburndale", "Baisley Park", "Bay Terrace/Fort Totten", "Bayside",
    "Bellerose", "Breezy Point/Fort Tilden/Riis Beach", "Briarwood/Jamaica Hills", "Broad Channel",
    "Cambria Heights", "College Point", "Corona", "Douglaston", "East Elmhurst", "East Flushing",
    "Elmhurst", "Elmhurst/Maspeth", "Far Rockaway", "Flushing", "Flushing Meadows-Corona Park",
    "Forest Hills", "Forest Park/Highland Park", "Fresh Meadows", "Glen Oaks", "Glendale",
    "Hammels/Arverne", "Hillcrest/Pomonok", "Hollis", "Howard Beach", "Jackson Heights", "Jamaica",
    "Jamaica Bay", "Jamaica Estates", "Kew Gardens", "Kew Gardens Hills", "Laurelton",
    "Long Island City/Hunters Point", "Long Island City/Queens Plaza", "Maspeth", "Middle Village",
    "Murray Hill-Queens", "Oakland Gardens", "Old Astoria", "Ozone Park", "Queens Village",
    "Queensboro Hill", "Queensbridge/Ravenswood", "Rego Park", "Richmond Hill", "Ridgewood",
    "Rockaway Park", "Rosedale", "Saint Albans", "South Jamaica", "South Ozone Park",
    "Springfield Gardens North", "Springfield Gardens South", "Steinway", "Sunnyside", "Whitestone",
    "Woodhaven", "Woodside", "Lindenwood", "Utopia", "Bayswater", "Dutch Kills",
)
_STATEN_ISLAND = (
    "Arden Heights", "Arrochar/Fort Wadsworth", "Bloomfield/Emerson Hill", "Charleston/Tottenville",
    "Eltingville/Annadale/Prince's Bay", "Freshkills Park", "Grymes Hill/Clifton", "Great Kills",
    "Great Kills Park", "Heartland Village/Todt Hill", "Mariners Harbor", "New Dorp/Midland Beach",
    "Oakwood", "Port Richmond", "Rossville/Woodrow", "Saint George/New Brighton",
    "South Beach/Dongan Hills", "Stapleton", "West Brighton", "Westerleigh",
)

#: The rows whose id and text the pipeline relies on, pinned to their real ids.
_SPECIAL_ZONES = {
    1: ("EWR", "Newark Airport", "EWR"),
    132: ("Queens", "JFK Airport", "Airports"),
    138: ("Queens", "LaGuardia Airport", "Airports"),
    264: ("Unknown", "NV", "N/A"),
    265: ("Unknown", "NA", "N/A"),
}
AIRPORT_IDS = (1, 132, 138)


@functools.lru_cache(maxsize=1)
def zones() -> tuple[tuple[int, str, str, str], ...]:
    """(LocationID, Borough, Zone, service_zone) x 265, with the real borough/service-zone counts.

    Ordinary zones get ids in alphabetical order of their names, as the TLC's do; the special rows keep
    their real ids. Names are real NYC neighbourhoods but ids other than the special ones are not the
    TLC's.
    """
    ordinary = sorted(
        [("Manhattan", z, "Yellow Zone") for z in _MANHATTAN_YELLOW]
        + [("Manhattan", z, "Boro Zone") for z in _MANHATTAN_BORO]
        + [("Bronx", z, "Boro Zone") for z in _BRONX]
        + [("Brooklyn", z, "Boro Zone") for z in _BROOKLYN]
        + [("Queens", z, "Boro Zone") for z in _QUEENS]
        + [("Staten Island", z, "Boro Zone") for z in _STATEN_ISLAND],
        key=lambda row: row[1].lower(),
    )
    free = iter(ordinary)
    rows = tuple((i, *(_SPECIAL_ZONES.get(i) or next(free))) for i in range(1, 266))
    assert next(free, None) is None, "zone name lists do not add up to 265"
    return rows


@functools.lru_cache(maxsize=None)
def _zone_weights(service: str) -> tuple[tuple[int, ...], tuple[float, ...]]:
    """Where each service picks up: yellow in Manhattan and the airports, green in the boroughs."""
    weight = {
        "yellow": {"Yellow Zone": 12.0, "Boro Zone": 0.3, "Airports": 20.0, "EWR": 0.5, "N/A": 5.0},
        "green": {"Yellow Zone": 0.5, "Boro Zone": 3.0, "Airports": 1.0, "EWR": 0.1, "N/A": 1.0},
    }.get(service, {"Yellow Zone": 4.0, "Boro Zone": 2.0, "Airports": 6.0, "EWR": 0.5, "N/A": 0.5})
    ids = tuple(z[0] for z in zones())
    return ids, tuple(weight[z[3]] for z in zones())


def generate_zone_lookup(out_path: Path) -> GeneratedFile:
    """Write taxi_zone_lookup.csv as the TLC first published it: CRLF, quoted header and text fields,
    bare LocationID (as in the real file), and zones "NV" / "NA" that null-happy readers swallow."""
    lines = ['"LocationID","Borough","Zone","service_zone"']
    lines += [f'{i},"{borough}","{zone}","{service_zone}"' for i, borough, zone, service_zone in zones()]
    data = ("\r\n".join(lines) + "\r\n").encode()
    out_path = Path(out_path)
    out_path.parent.mkdir(parents=True, exist_ok=True)
    unchanged = out_path.exists() and out_path.read_bytes() == data
    if not unchanged:
        _atomic_write_bytes(out_path, data)
    return GeneratedFile(out_path, len(zones()), hashlib.sha256(data).hexdigest(), reused=unchanged)
