package v1alpha1

import (
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ClaimKind is what a Claim reserves.
// +kubebuilder:validation:Enum=DoorNumber;Username
type ClaimKind string

const (
	// ClaimDoorNumber reserves an organization's door number across the cluster.
	ClaimDoorNumber ClaimKind = "DoorNumber"
	// ClaimUsername reserves a username within one organization.
	ClaimUsername ClaimKind = "Username"
)

// ClaimHolder names the object that holds a claimed value.
type ClaimHolder struct {
	// Kind of the holder: Organization for a door number, Member for a username.
	// +kubebuilder:validation:Enum=Organization;Member
	Kind string `json:"kind"`
	// Namespace of the holder.
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// Name of the holder.
	// +kubebuilder:validation:MaxLength=253
	Name string `json:"name"`
}

// ClaimSpec is the value reserved and who holds it.
// +kubebuilder:validation:XValidation:rule="self.kind == oldSelf.kind && self.value == oldSelf.value",message="a claim's kind and value cannot change"
type ClaimSpec struct {
	// Kind of value reserved.
	Kind ClaimKind `json:"kind"`
	// Value reserved: the door number, or the username.
	// +kubebuilder:validation:MaxLength=253
	Value string `json:"value"`
	// Holder is the object the value belongs to. A claim whose holder no longer exists, or
	// no longer carries the value, is stale and is taken over by the next one to ask.
	Holder ClaimHolder `json:"holder"`
}

// Claim reserves a value that must be unique: an organization's door number across the
// cluster, or a username within an organization. It is named after the value, so of two
// concurrent requests for one value the second Create fails with AlreadyExists: uniqueness is
// kept by the API server, not by listing and then acting. Only Roster's manager and portal
// write Claims; people never need to.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:printcolumn:name="Kind",type=string,JSONPath=`.spec.kind`
// +kubebuilder:printcolumn:name="Holder Namespace",type=string,JSONPath=`.spec.holder.namespace`
// +kubebuilder:printcolumn:name="Holder",type=string,JSONPath=`.spec.holder.name`
// +kubebuilder:printcolumn:name="Age",type=date,JSONPath=`.metadata.creationTimestamp`
type Claim struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the value reserved and its holder.
	Spec ClaimSpec `json:"spec"`
}

// ClaimList is a list of Claims.
// +kubebuilder:object:root=true
type ClaimList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the Claims.
	Items []Claim `json:"items"`
}

// ImportLedgerSpec counts one user's invitations in one organization by the hour.
type ImportLedgerSpec struct {
	// Namespace of the organization.
	// +kubebuilder:validation:MaxLength=63
	Namespace string `json:"namespace"`
	// Organization whose quota the invitations count against.
	// +kubebuilder:validation:MaxLength=253
	Organization string `json:"organization"`
	// User is the Kubernetes user who created the invitations.
	// +kubebuilder:validation:MaxLength=253
	User string `json:"user"`
	// Hours are the invitations created in each hour of the last day, oldest first; older
	// hours are dropped as new ones are counted.
	// +optional
	// +kubebuilder:validation:MaxItems=25
	// +listType=atomic
	Hours []ImportHour `json:"hours,omitempty"`
}

// ImportHour is how many invitations a user created in one hour.
type ImportHour struct {
	// Start of the hour.
	Start metav1.Time `json:"start"`
	// Count of invitations created in it.
	// +kubebuilder:validation:Minimum=0
	Count int32 `json:"count"`
}

// ImportLedger keeps the count behind the daily invitation quota of the Free plan: the
// admission webhook adds to it with optimistic concurrency before it admits an invitation, so
// parallel creates cannot overshoot, and deleting invitations does not give quota back. It
// is cluster-scoped so that the tenants whose quota it counts cannot reset it. Only Roster's
// manager writes ImportLedgers.
// +kubebuilder:object:root=true
// +kubebuilder:resource:scope=Cluster
// +kubebuilder:printcolumn:name="Namespace",type=string,JSONPath=`.spec.namespace`
// +kubebuilder:printcolumn:name="Organization",type=string,JSONPath=`.spec.organization`
// +kubebuilder:printcolumn:name="User",type=string,JSONPath=`.spec.user`
type ImportLedger struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata,omitempty"`

	// Spec is the user's count by the hour.
	Spec ImportLedgerSpec `json:"spec"`
}

// ImportLedgerList is a list of ImportLedgers.
// +kubebuilder:object:root=true
type ImportLedgerList struct {
	metav1.TypeMeta `json:",inline"`
	metav1.ListMeta `json:"metadata,omitempty"`
	// Items are the ImportLedgers.
	Items []ImportLedger `json:"items"`
}

func init() {
	SchemeBuilder.Register(&Claim{}, &ClaimList{}, &ImportLedger{}, &ImportLedgerList{})
}
