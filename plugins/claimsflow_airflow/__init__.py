"""claimsflow's Airflow adapters: hooks, operators and sensors over the domain code in `include/`."""
