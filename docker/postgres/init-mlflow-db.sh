# Runs once, when the Postgres volume is first initialised (the image's entrypoint sources every
# *.sh in /docker-entrypoint-initdb.d): MLflow's tracking store gets a database of its own next to
# the warehouse (POSTGRES_DB). Both names come from .env through docker/compose.yml.
psql -v ON_ERROR_STOP=1 --username "$POSTGRES_USER" --dbname "$POSTGRES_DB" --set db="$MLFLOW_DB" <<'SQL'
CREATE DATABASE :"db";
SQL
