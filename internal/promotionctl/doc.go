// Package promotionctl holds what the ferry CLI and its dashboard do to Promotions with the user's own client:
// read stages in spec order, find a digest in status, and request a rollback, approval, abort or hold release
// by setting the request annotations the controller acts on. It talks to the API server only, as the user, and
// never acts on a stage itself: the controller does. It prints nothing; callers present what it returns.
package promotionctl
