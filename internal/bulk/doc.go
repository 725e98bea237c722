// Package bulk is what admins do to many people at once: import invitations from a CSV file,
// export members to one, and edit, approve, reject, restore, terminate or re-invite many
// members in one go; import an application's clients from the CSV files of Roster, Microsoft
// Entra, Okta or Google Workspace, and find, export, lock, unlink, delete, resend or relink
// its external users. It works through a controller-runtime client against the API server,
// like kubectl, so every change goes through the same schema, admission and RBAC as a
// single `kubectl apply`, and a refusal for one person is reported without stopping the
// rest.
//
// Every change is a merge patch of only the fields it means to change, never an Update, so
// it does not overwrite what the controllers or another admin wrote in the meantime.
package bulk
