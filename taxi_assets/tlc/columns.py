"""What every column means, from the TLC's data dictionaries (yellow, green, FHV, HVFHV trip
records) and for the columns we add: the catalog the UI shows beside each column."""

from __future__ import annotations

from taxi_assets.tlc.services import SOURCE_MONTH

COLUMN_DESCRIPTIONS: dict[str, str] = {
    # identity and time
    "vendor_id": "The TPEP/LPEP provider that sent the record: 1 Creative Mobile Technologies, 2 Curb Mobility "
                 "(VeriFone), 6 Myle Technologies, 7 Helix.",
    "hvfhs_license_num": "The TLC license of the high-volume company: HV0002 Juno, HV0003 Uber, HV0004 Via, HV0005 Lyft.",
    "dispatching_base_num": "TLC base license number of the base that dispatched the trip.",
    "originating_base_num": "Base number of the base that received the original trip request.",
    "affiliated_base_number": "Base number of the base the vehicle is affiliated with.",
    "request_datetime": "When the passenger requested the trip (local New York time).",
    "on_scene_datetime": "When the driver arrived at the pickup (accessible vehicles only; local time).",
    "pickup_datetime": "When the meter was engaged / the passenger was picked up (local New York time, no time zone).",
    "dropoff_datetime": "When the meter was disengaged / the passenger was dropped off (local New York time).",
    # places
    "pickup_location_id": "TLC taxi zone (1-265) where the trip began; 264 and 265 are unknown / outside NYC. "
                          "Joins taxi_zones.location_id.",
    "dropoff_location_id": "TLC taxi zone (1-265) where the trip ended; 264 and 265 are unknown / outside NYC.",
    # the trip
    "passenger_count": "Number of passengers, as entered by the driver.",
    "trip_distance": "Trip distance in miles reported by the taximeter.",
    "trip_miles": "Total miles of the passenger trip.",
    "trip_time": "Total time of the passenger trip, in seconds.",
    "ratecode_id": "Final rate code: 1 standard, 2 JFK, 3 Newark, 4 Nassau or Westchester, 5 negotiated fare, "
                   "6 group ride, 99 unknown.",
    "store_and_fwd_flag": "Y when the trip record was held in the vehicle's memory before reaching the vendor (no "
                          "server connection), N otherwise.",
    "payment_type": "How the passenger paid: 0 flex fare, 1 credit card, 2 cash, 3 no charge, 4 dispute, "
                    "5 unknown, 6 voided trip.",
    "trip_type": "Green taxis: 1 street-hail, 2 dispatch.",
    "sr_flag": "1 when the trip was part of a shared ride chain (pooling) offered by the base; null otherwise.",
    "shared_request_flag": "Whether the passenger agreed to a shared / pooled ride, whether or not matched (Y/N).",
    "shared_match_flag": "Whether the passenger shared the vehicle with another passenger booked separately (Y/N).",
    "access_a_ride_flag": "Whether the trip was administered on behalf of the MTA's Access-A-Ride (Y/N).",
    "wav_request_flag": "Whether the passenger requested a wheelchair-accessible vehicle (Y/N).",
    "wav_match_flag": "Whether the trip took place in a wheelchair-accessible vehicle (Y/N).",
    # money (US dollars)
    "fare_amount": "Time-and-distance fare calculated by the meter, in USD.",
    "extra": "Miscellaneous extras and surcharges (rush hour, overnight), in USD.",
    "mta_tax": "MTA tax triggered by the metered rate in use, in USD.",
    "tip_amount": "Tip, in USD: filled automatically for credit-card tips; cash tips are not included.",
    "tolls_amount": "Total of all tolls paid in the trip, in USD.",
    "ehail_fee": "E-hail fee for green taxis, in USD (published but always empty).",
    "improvement_surcharge": "Improvement surcharge assessed at the flag drop, in USD.",
    "total_amount": "Total charged to passengers, cash tips excluded, in USD.",
    "congestion_surcharge": "New York State congestion surcharge for the trip, in USD (from 2019).",
    "airport_fee": "Fee for pickups at LaGuardia and JFK airports, in USD (source column airport_fee / Airport_fee).",
    "cbd_congestion_fee": "MTA Congestion Relief Zone toll for trips in Manhattan's central business district, "
                          "in USD (from 2025).",
    "base_passenger_fare": "Base passenger fare before tolls, tips, taxes and fees, in USD.",
    "tolls": "Total of all tolls paid in the trip, in USD.",
    "bcf": "Black Car Fund contribution collected for the trip, in USD.",
    "sales_tax": "NYS sales tax collected for the trip, in USD.",
    "tips": "Tips received from the passenger(s), in USD (in the mart: their sum for the day and zone).",
    "driver_pay": "Total driver pay, tolls and tips excluded, net of commission, surcharges and taxes, in USD.",
    # ours
    SOURCE_MONTH: "First day of the month of the TLC file the row came from: the month the row is loaded, "
                  "replaced and audited with (not the pickup's month, which can differ).",
    "reject_rule": "The first cleaning rule the row broke (see the cleaning rules in the README).",
    "pickup_date": "Calendar day of pickup_datetime: the lake's date folder, and the mart's day.",
    # the zone lookup
    "location_id": "TLC taxi zone id, 1-265.",
    "borough": "Borough of the zone (EWR for Newark Airport; Unknown for 264/265).",
    "zone": "Name of the zone (the zone named \"NA\" is a name, not a null).",
    "service_zone": "Service area of the zone: Yellow Zone, Boro Zone, Airports, EWR.",
    # the zone lookup file as the TLC publishes it
    "LocationID": "TLC taxi zone id, 1-265 (location_id once loaded).",
    "Borough": "Borough of the zone (EWR for Newark Airport; Unknown for 264/265).",
    "Zone": "Name of the zone (the zone named \"NA\" is a name, not a null).",
    # the rejects summary
    "rule": "A cleaning rule that rejected rows in the month.",
    "rows": "How many rows of the month that rule rejected first.",
    # the daily zone mart
    "pickup_borough": "Borough of the pickup zone.",
    "pickup_zone": "Name of the pickup zone.",
    "trips": "Trips picked up in the zone on the day.",
    "passengers": "Passengers carried on those trips (null where the service does not record them).",
    "distance_miles": "Miles driven on those trips.",
    "fares": "Sum of the base fares of those trips, in USD.",
    "totals": "Sum of the totals charged (taxis), in USD; null where the service publishes no total.",
    "mean_duration_minutes": "Mean trip duration, pickup to dropoff, in minutes.",
}


def describe_column(name: str) -> str | None:
    """The description of a canonical (or our own) column; None for a name we do not know."""
    return COLUMN_DESCRIPTIONS.get(name)
