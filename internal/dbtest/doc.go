// Package dbtest gives tests databases whose faults they control: a private
// MariaDB (its own data directory and port, started through scripts/mariadb.sh)
// that a test may kill, freeze or restart, and a TCP proxy that can refuse,
// hang, or cut a MySQL connection at COMMIT. Tests never stop the machine's
// shared database; what a helper starts it stops, by pid, when the test ends.
//
// Every wait is bounded: a helper that cannot do its job within its bound fails
// the test rather than hang it.
//
// dbtest imports nothing of ours: the store's own tests use it.
package dbtest
