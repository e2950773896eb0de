// Package compose will turn a compose project into Docker container options,
// recreate one service, wait until it is really ready, and classify failures.
//
// May import: compose-go v2, the Docker Engine SDK, profiles. Not implemented
// yet (issue 7).
package compose
