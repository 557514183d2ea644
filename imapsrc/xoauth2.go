package imapsrc

import (
	"encoding/json"
	"fmt"

	"github.com/emersion/go-sasl"
)

// xoauth2 is the SASL mechanism Google and Microsoft document for OAuth2
// bearer tokens before RFC 7628; go-sasl has only OAUTHBEARER.
const xoauth2 = "XOAUTH2"

// newXOAuth2Client returns a client sending
// "user=USER\x01auth=Bearer TOKEN\x01\x01".
func newXOAuth2Client(user, token string) sasl.Client {
	return &xoauth2Client{user: user, token: token}
}

type xoauth2Client struct{ user, token string }

func (c *xoauth2Client) Start() (string, []byte, error) {
	return xoauth2, []byte("user=" + c.user + "\x01auth=Bearer " + c.token + "\x01\x01"), nil
}

// Next is only called when the token was refused: the challenge is a JSON
// error, which the client must answer for the server to end the exchange
// with NO (see bearerClient for the answer).
func (c *xoauth2Client) Next([]byte) ([]byte, error) { return []byte{0x01}, nil }

// answerFailure wraps a SASL client for a bearer-token mechanism whose only
// challenge is the server's JSON error (RFC 7628 section 3.2.2). go-sasl's
// OAUTHBEARER client returns that as an error, which leaves the command
// unanswered on the connection; this one keeps the error, answers with
// reply, and lets the server's NO end the command.
type answerFailure struct {
	sasl.Client
	reply  []byte
	status string // the server's error status, once it sent one
}

func (a *answerFailure) Next(challenge []byte) ([]byte, error) {
	var e sasl.OAuthBearerError
	if json.Unmarshal(challenge, &e) == nil && e.Status != "" {
		a.status = e.Status
	} else {
		a.status = fmt.Sprintf("%.200q", challenge)
	}
	return a.reply, nil
}

// bearerClient returns the SASL client for mech, one of OAUTHBEARER and
// XOAUTH2.
func bearerClient(mech, user, token, host string, port int) *answerFailure {
	if mech == sasl.OAuthBearer {
		// RFC 7628 section 3.2.3: the dummy response is a single ^A.
		return &answerFailure{
			Client: sasl.NewOAuthBearerClient(&sasl.OAuthBearerOptions{Username: user, Token: token, Host: host, Port: port}),
			reply:  []byte{0x01},
		}
	}
	// Google documents an empty reply for XOAUTH2, but go-imap v2 beta.8
	// sends an empty reply as "=", which is valid only for an initial
	// response: Dovecot answers BAD and disconnects. The single ^A of
	// OAUTHBEARER is what Dovecot takes; authenticateBearer counts any end
	// after an error challenge as a refusal, and Dial retries on a new
	// connection, so a server that wants another reply costs nothing more.
	return &answerFailure{Client: newXOAuth2Client(user, token), reply: []byte{0x01}}
}
