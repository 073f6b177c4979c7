-- Runs once, when the Postgres volume is first created: MLflow gets its own database.
CREATE DATABASE mlflow;
