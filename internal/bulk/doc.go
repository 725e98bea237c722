// Package bulk is what admins do to many people at once: import invitations from a CSV file,
// export members to one, and edit, approve, reject, restore, terminate or re-invite many
// members in one go. It works through a controller-runtime client against the API server,
// like kubectl, so every change goes through the same schema, admission and RBAC as a
// single `kubectl apply`, and a refusal for one person is reported without stopping the
// rest.
//
// Every change is a merge patch of only the fields it means to change, never an Update, so
// it does not overwrite what the controllers or another admin wrote in the meantime.
package bulk
