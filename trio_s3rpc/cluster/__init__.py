"""One service over many processes: the supervisor, its workers, and how they talk."""
