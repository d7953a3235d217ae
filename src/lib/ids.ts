const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Whether a value from outside can be used as a uuid (PostgreSQL would reject anything else with an error). */
export const isUuid = (value: string): boolean => UUID.test(value);
