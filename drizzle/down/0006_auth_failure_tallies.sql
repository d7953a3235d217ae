DROP TABLE "auth_failure_tallies";
